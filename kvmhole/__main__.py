from kvmhole.cli import main

main()
