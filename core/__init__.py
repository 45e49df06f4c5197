"""What every layer shares, once, and nothing of ours imported: files that appear whole
(`files`), JSON lines that survive a torn last line (`jsonl`), strict-JSON cleaning
(`clean`), the alias, tag and experiment names (`names`), the test-only fault points
(`faults`), per-step metrics (`steps`), which Prefect API is a real server (`servers`)
and console text that is never read as markup (`console`).

`tasks`, `registry`, `serving`, `flows` and `cli` may all import it; it imports none of them.
"""
