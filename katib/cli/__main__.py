from katib.cli import main

main()
