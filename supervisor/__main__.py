from supervisor.commands.cli import main

raise SystemExit(main())
