from eegalign.cli import main

raise SystemExit(main())
