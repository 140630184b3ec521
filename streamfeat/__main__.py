from __future__ import annotations

from streamfeat.cli import main

raise SystemExit(main())
