"""Hooks (`hooks`), operators (`operators`) and the trigger (`triggers`) for the AWS APIs the Amazon provider
lacks: Pinpoint import jobs, Customer Profiles upload jobs and segment definitions, Personalize dataset imports.
Imported on the aws target only (crosschannel.wiring.steps), and by the triggerer."""
