"""Where the peers' example data are: ``shared/peers`` beside the repository (as laid for
sessions and CI), else /work/shared/peers."""

from pathlib import Path

_HERE = Path(__file__).resolve().parent.parent
PEERS = next((p for p in (_HERE.parent / "shared" / "peers", Path("/work/shared/peers")) if p.is_dir()),
             _HERE.parent / "shared" / "peers")
