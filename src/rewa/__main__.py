from rewa.cli import main

raise SystemExit(main())
