from nightcopy.cli.main import main

main()
