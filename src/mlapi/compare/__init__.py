"""`mlapi compare`: train a list of IMDb configurations and the classic baselines on the
same split, then write a leaderboard (Markdown table, bar chart PNG, JSON).

    plan.py         the YAML plan (or --run flag strings) -> ExperimentConfigs + baselines
    runner.py       one configuration or baseline -> a LeaderboardEntry (trained, timed)
    leaderboard.py  LeaderboardEntry, ranking by val accuracy, the .md/.png/.json writer
    command.py      the `mlapi compare` flags and handler

This package file stays light: the CLI imports `command` at start-up.
"""
