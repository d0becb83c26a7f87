"""The readouts stage (dags/campaign_readout.py): for each audience and send day, treatment against control once
each configured horizon has passed (`sends`: which sends are due and the SQL job over their groups; `stats`: the
statistics; `report`: the committed JSON and HTML and the stakeholder digest). `tasks` has one function per task id.

May import: crosschannel.core and the earlier stages.
"""
