"""Pure CloudFormation builders: config (+ other stacks' outputs) in, template dicts out.
No I/O beyond reading the static templates in `templates/`, and no AWS SDK."""
