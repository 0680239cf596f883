from regdeploy.cli import main

main()
