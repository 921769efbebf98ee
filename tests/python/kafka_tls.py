"""TLS settings for the test consumers: when KAFKA_SSL_CA_LOCATION names a CA file, connect with
security.protocol=SSL trusting that CA (librdkafka also checks that the broker's certificate
names the host it dialled); otherwise plain."""
import os


def tls_settings():
    ca = os.environ.get("KAFKA_SSL_CA_LOCATION")
    if not ca:
        return {}
    return {"security.protocol": "SSL", "ssl.ca.location": ca}
