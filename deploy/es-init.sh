#!/usr/bin/env bash
# One-shot set-up of Elasticsearch security for the compose stack: the users Filebeat and the
# analyzers log in with (least privilege), and the service-account token Kibana uses.
# Safe to run again: users and roles are upserted; a still-valid Kibana token is kept.
# Reads ES_URL, ELASTIC_PASSWORD, PREDWATCH_ES_PASSWORD, FILEBEAT_ES_PASSWORD, KIBANA_SERVICE_TOKEN;
# writes the Kibana token to $TOKEN_FILE (owned by $TOKEN_OWNER when set: Kibana's uid).
# Never prints a password or a token.
set -euo pipefail

ES_URL="${ES_URL:-http://elasticsearch:9200}"
TOKEN_FILE="${TOKEN_FILE:-/tokens/kibana}"
TOKEN_NAME="predwatch-compose"

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
until es GET "/_cluster/health?wait_for_status=yellow&timeout=10s" >/dev/null 2>&1; do
  sleep 3
done

echo "es-init: roles and users"
es PUT /_security/role/predwatch_filebeat '{
  "cluster": ["monitor", "read_ilm", "read_pipeline"],
  "indices": [{"names": ["ml-predictions-*"],
               "privileges": ["create_doc", "create_index", "auto_configure", "view_index_metadata"]}]
}' >/dev/null
es PUT /_security/role/predwatch_analyzer '{
  "cluster": ["monitor", "manage_index_templates", "manage_ilm"],
  "indices": [{"names": ["ml-predictions-*"], "privileges": ["read", "view_index_metadata"]},
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
