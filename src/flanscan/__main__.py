from flanscan._cli import main

main()
