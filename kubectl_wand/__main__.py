from kubectl_wand.cli import main

main()
