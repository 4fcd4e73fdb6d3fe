"""The model: the all-MiniLM-L6-v2 encoder, task heads and the multi-task model (one encoder pass, then
the heads). Knows no dataset, no task names and no serving: every task arrives as a HeadConfig."""
