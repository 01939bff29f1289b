from rootstream_cli.main import main

main()
