from mlapi.cli import main

raise SystemExit(main())
