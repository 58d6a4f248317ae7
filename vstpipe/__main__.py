from vstpipe.entry import main

main()
