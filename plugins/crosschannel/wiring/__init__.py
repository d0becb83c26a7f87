"""What DAG files import: default task arguments, schedules and Params (`defaults`), the stage assets (`assets`),
the steps that run differently per target (`steps`: the provider's operator on aws, the local stand-in on
local, so no DAG file branches on the target), notifiers and deadline callbacks (`notify`), the deadline
reference (`deadlines`), and hooks, operators and triggers for the AWS APIs the Amazon provider lacks (`aws`).

Cheap to import: DAG files import it at parse time. May import: crosschannel.core; crosschannel.stages and
crosschannel.local only inside task bodies.
"""
