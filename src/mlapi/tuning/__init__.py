"""`mlapi tune`: a search over `mlapi train imdb` settings on Ray Tune, with Optuna's TPE
choosing the trials and ASHA stopping the bad ones after any epoch.

    space.py    the space file (base flags, metric, mode, search distributions), validated
    trial.py    one trial: a normal run in its own folder, each epoch reported to Tune
    sweep.py    Ray (embedded or a cluster), the Tuner, resume, trials -> leaderboard entries
    command.py  the `mlapi tune` flags and handler

Imported only by its command: the CLI imports `command` at start-up, which imports no
ray, optuna or torch until the handler runs.
"""
