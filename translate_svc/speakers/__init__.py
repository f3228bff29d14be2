"""Speaker labels in one mixed channel: the GE2E speaker encoder that the Resemblyzer wheel ships,
run with numpy (``encoder``), and online clustering of its embeddings into a stream's speakers
(``cluster``). No torch: sessions use it, and sessions never load torch (``pyproject.toml``'s
import contracts)."""
