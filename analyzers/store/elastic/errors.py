"""The Elasticsearch client's errors that `predwatch setup` tells apart, so that only store/ imports the client."""

from elasticsearch import ApiError, AuthenticationException, AuthorizationException, NotFoundError
from elasticsearch import ConnectionError as EsConnectionError

__all__ = ["ApiError", "AuthenticationException", "AuthorizationException", "EsConnectionError", "NotFoundError"]
