"""What every stage shares, and no DAG, task or operator: the typed config (`config`, with its `alerts` and
`readouts` sections in `alert_settings` and `readout_settings`), storage and its atomic commit (`storage`), every
place under the storage root (`paths`), the run's partition (`partition`), SQL jobs and their engines
(`sqljobs`, `engines`), GX gates (`gates`, whose GX run is include/glue/gx_checks.py) and their Data Docs made
offline (`data_docs`), the source tables (`source`), the DMS and Segment file layouts (`dms`, `segment_files`),
SageMaker job configs (`sagemaker`) and the errors a retry cannot fix (`errors`).

May import: nothing else of crosschannel.
"""
