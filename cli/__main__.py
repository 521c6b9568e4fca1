from corpusforge.main import main

raise SystemExit(main())
