from rxledger.cli import main

raise SystemExit(main())
