"""The four DORA metrics of one environment, from its deployment history.

Definitions (docs/dora.md says why):

- a *change* is a deployment that moved traffic (a transition with a weight above 0): it has a version,
  it ended ``succeeded``, ``rolled_back`` or ``failed``, it is not a ``no_change`` run, not a
  rehearsal and not the placeholder record a provisioner writes;
- **deployment frequency**: promoted (succeeded) changes per week over the period, with the DORA band
  (elite: at least one a day on average; high: at least one a week; medium: at least one a month; low);
- **lead time for changes**: the time of the commit that last changed what ships (recorded from git at
  deploy time, ``extra.commit_time``; shipped with uncommitted changes, ``extra.uncommitted``: the
  deployment's start) to the ``succeeded`` transition; median over the promoted changes that carry one;
- **change failure rate**: changes that were rolled back, whose rollback failed, that were followed by
  a rollback (an ``EVT#`` rollback event after their promotion and before the next change) or by a
  hotfix (the next change is marked ``extra.hotfix``), over all changes;
- **time to restore**: from the failure's start to traffic back on a good version — a canary rolled
  back: first canary traffic → ``rolled_back``; a promoted change rolled back later: promotion → the
  rollback event; a change followed by a hotfix: its promotion → the hotfix's promotion; a failed
  rollback: first canary traffic → the next rollback event or promoted change (open while neither).

The modules, each with one job:

- :mod:`.model` — the figures' types (``Change``, ``Figure``, ``DoraReport``) and the targets;
- :mod:`.compute` — pure: records in, figures out (tests check it against hand-worked figures);
- :mod:`.source` — reads the period's records through the ``DeploymentHistory`` port;
- :mod:`.render` — the text lines and the trend PNG (the JSON is ``DoraReport.to_json``);
- :mod:`.publish` — one finished deployment's figures as CloudWatch metrics (``Stageflow/Delivery``);
- :mod:`.commit` — the shipped change's commit, time and hotfix mark, read from git at deploy time.
"""
