from covsweep.cli import main

main()
