from nightcopy.cli import main

main()
