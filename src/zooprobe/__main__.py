from zooprobe.cli.main import main

main()
