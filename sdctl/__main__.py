from sdctl.cli.main import main

main()
