"""What every stage shares and nothing Airflow-specific: the typed config (`config`), storage and its atomic
commit (`storage`), every place under the storage root (`paths`), the run's partition (`partition`), SQL jobs
and their engines (`sqljobs`, `engines`), GX gates (`gates`), the source tables (`source`), the DMS and
Segment file layouts (`dms`, `segment_files`) and SageMaker job configs (`sagemaker`).

May import: nothing else of crosschannel.
"""
