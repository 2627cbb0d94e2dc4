from sdctl.execute.local.emulator.server import main

main()
