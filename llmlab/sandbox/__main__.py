from llmlab.sandbox.control import main

raise SystemExit(main())
