#!/usr/bin/env bash
# One-shot set-up of Elasticsearch security for the compose stack: the users Filebeat and the
# analyzers log in with (least privilege), and the service-account token Kibana uses.
# Safe to run again: users and roles are upserted; a still-valid Kibana token is kept.
# Reads ES_URL, ELASTIC_PASSWORD, PREDWATCH_ES_PASSWORD, FILEBEAT_ES_PASSWORD, KIBANA_SERVICE_TOKEN,
# WAIT_SECONDS (300); writes the Kibana token to $TOKEN_FILE (owned by $TOKEN_OWNER when set: Kibana's uid).
# The token is created through the API, so it is kept in the cluster (the es-data volume), not in a file of
# the Elasticsearch container that a new container would not have.  Never prints a password or a token.
set -euo pipefail

ES_URL="${ES_URL:-http://elasticsearch:9200}"
TOKEN_FILE="${TOKEN_FILE:-/tokens/kibana}"
TOKEN_NAME="predwatch-compose"
WAIT_SECONDS="${WAIT_SECONDS:-300}"

for var in ELASTIC_PASSWORD PREDWATCH_ES_PASSWORD FILEBEAT_ES_PASSWORD; do
  if [ -z "${!var:-}" ]; then
    echo "es-init: $var is not set (copy .env.example to .env and fill it in)" >&2
    exit 1
  fi
done

es() {
  # es METHOD PATH [JSON]: a request as the elastic user; prints the body, fails on HTTP >= 400.
  local method="$1" path="$2" body="${3:-}" out code
  local args=(--silent --show-error -u "elastic:${ELASTIC_PASSWORD}" -X "$method" -w '\n%{http_code}')
  if [ -n "$body" ]; then
    args+=(-H "Content-Type: application/json" --data-binary "$body")
  fi
  out="$(curl "${args[@]}" "${ES_URL}${path}")" || return 1
  code="${out##*$'\n'}"
  out="${out%$'\n'*}"
  if [ "$code" -ge 400 ]; then
    echo "es-init: $method $path answered HTTP $code: $out" >&2
    return 1
  fi
  printf '%s' "$out"
}

echo "es-init: waiting for Elasticsearch at ${ES_URL}"
# Wait while Elasticsearch starts (no answer, 503); a refused password will not get better: stop at once.
deadline=$(( $(date +%s) + WAIT_SECONDS ))
while true; do
  code="$(curl --silent --output /dev/null --write-out '%{http_code}' -u "elastic:${ELASTIC_PASSWORD}" \
    "${ES_URL}/_cluster/health?wait_for_status=yellow&timeout=10s" || true)"
  case "$code" in
    200) break ;;
    401) echo "es-init: Elasticsearch at ${ES_URL} rejected the elastic user's password (HTTP 401): check ELASTIC_PASSWORD" >&2
         exit 1 ;;
    403) echo "es-init: the elastic user may not read the cluster's health (HTTP 403)" >&2
         exit 1 ;;
  esac
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "es-init: Elasticsearch at ${ES_URL} was not ready after ${WAIT_SECONDS}s (last answer: HTTP ${code:-none})" >&2
    exit 1
  fi
  echo "es-init: not ready yet (HTTP ${code:-no answer}), retrying"
  sleep 3
done

echo "es-init: roles and users"
# Filebeat creates predictions (never overwrites them), writes feedback over the day's earlier label of the
# same prediction (index), and appends dead letters through the alias.
es PUT /_security/role/predwatch_filebeat '{
  "cluster": ["monitor", "read_ilm", "read_pipeline"],
  "indices": [{"names": ["ml-predictions-*"],
               "privileges": ["create_doc", "create_index", "auto_configure", "view_index_metadata"]},
              {"names": ["ml-feedback-*"],
               "privileges": ["index", "create_index", "auto_configure", "view_index_metadata"]},
              {"names": ["ml-deadletter*"], "privileges": ["create_doc", "view_index_metadata"]}]
}' >/dev/null
es PUT /_security/role/predwatch_analyzer '{
  "cluster": ["monitor", "manage_index_templates", "manage_ilm"],
  "indices": [{"names": ["ml-predictions-*", "ml-feedback-*"], "privileges": ["read", "view_index_metadata"]},
              {"names": ["ml-deadletter*"], "privileges": ["read", "monitor"]},
              {"names": ["ml-monitor-*"], "privileges": ["all"]}]
}' >/dev/null
es PUT /_security/user/predwatch_filebeat \
  "{\"password\": \"${FILEBEAT_ES_PASSWORD}\", \"roles\": [\"predwatch_filebeat\"]}" >/dev/null
es PUT /_security/user/predwatch \
  "{\"password\": \"${PREDWATCH_ES_PASSWORD}\", \"roles\": [\"predwatch_analyzer\"]}" >/dev/null

umask 077
if [ -n "${KIBANA_SERVICE_TOKEN:-}" ]; then
  echo "es-init: Kibana uses the service token from .env"
  printf '%s' "$KIBANA_SERVICE_TOKEN" > "$TOKEN_FILE"
elif [ -s "$TOKEN_FILE" ] && curl --silent --fail -o /dev/null \
    -H "Authorization: Bearer $(cat "$TOKEN_FILE")" "${ES_URL}/_security/_authenticate"; then
  echo "es-init: Kibana's service token is still valid"
else
  echo "es-init: creating Kibana's service token"
  es DELETE "/_security/service/elastic/kibana/credential/token/${TOKEN_NAME}" >/dev/null 2>&1 || true
  response="$(es POST "/_security/service/elastic/kibana/credential/token/${TOKEN_NAME}")"
  token="$(printf '%s' "$response" | sed -n 's/.*"value"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')"
  if [ -z "$token" ]; then
    echo "es-init: Elasticsearch did not return a service token" >&2
    exit 1
  fi
  printf '%s' "$token" > "$TOKEN_FILE"
fi
if [ -n "${TOKEN_OWNER:-}" ]; then
  chown "$TOKEN_OWNER" "$TOKEN_FILE"
fi
echo "es-init: done"
