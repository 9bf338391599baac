"""Sweeps: grid, random and Bayesian searches as tracked objects, with early stopping.

config.py   a sweep's settings from a request body (pure; errors name the field)
space.py    trial n's options for grid and random; the space as Optuna distributions
trials.py   a trial's objective, status and reason; counts, best, the API's view (pure)
study.py    Optuna rebuilt from the record: the next bayes trial, prune or not, why
record.py   the ``sweeps`` collection: every write, each a compare-and-set
driver.py   the I/O: makes trials as slots free, prunes, pauses, resumes, cancels
"""
