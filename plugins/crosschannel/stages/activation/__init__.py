"""The activation stage (dags/audience_activation.py): audiences with stable control groups, the day's profiles,
and every destination's files and validated requests (Pinpoint, Customer Profiles, Personalize) plus Segment's
identify calls. `tasks` has one function per task id; the `load_*` tasks are steps of crosschannel.wiring.steps
(the operators of crosschannel.wiring.aws on aws, the outbox of crosschannel.local.outbox locally).

May import: crosschannel.core and the earlier stages.
"""
