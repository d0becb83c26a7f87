"""The ingest stage (dags/retail_ingest.py): the store DB through DMS and the day's Segment files, checked
and landed. `tasks` has one function per task id; `landing` checks DMS's files.

May import: crosschannel.core.
"""
