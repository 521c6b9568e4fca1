from corpusforge.cli.main import main

raise SystemExit(main())
