# Fairgate on the official Airflow image: pinned requirements, then the two packages.
FROM apache/airflow:3.3.2-python3.11

USER airflow
COPY --chown=airflow:root requirements.txt /opt/fairgate/requirements.txt
# Flask-WTF: MLflow's basic-auth app (the compose file's tracking server runs with it)
RUN pip install --no-cache-dir -r /opt/fairgate/requirements.txt "Flask-WTF>=1.2,<2"

COPY --chown=airflow:root pyproject.toml README.md /opt/fairgate/
COPY --chown=airflow:root include /opt/fairgate/include
COPY --chown=airflow:root plugins /opt/fairgate/plugins
COPY --chown=airflow:root dags /opt/fairgate/dags
RUN pip install --no-cache-dir --no-deps -e /opt/fairgate

ENV AIRFLOW__CORE__DAGS_FOLDER=/opt/fairgate/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/fairgate/plugins \
    FAIRGATE_POLICY=/opt/fairgate/include/config/policy.yaml \
    GX_ANALYTICS_ENABLED=False
