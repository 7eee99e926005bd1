"""Running jobs: target validation and execution (`targets/`) and the leased executor."""
