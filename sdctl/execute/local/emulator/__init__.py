"""The local AWS: moto's server made as strict as AWS where sdctl relies on it (rules.py, each
rule citing the documentation it follows), faster where moto does per call what AWS does not
(fast.py), keeping its data across restarts (persist.py, durable.py), and signing as AWS signs
(presigned.py). `python -m sdctl.execute.local.emulator` runs it (server.py)."""
