"""The local web console (`sdctl console`): pages and a shared poller over sdctl/operate."""
