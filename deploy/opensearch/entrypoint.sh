#!/usr/bin/env bash
# OpenSearch's own entrypoint, then tenantrag's least-privilege role and user.
#
# Starts the image's entrypoint (the security plugin's demo configuration included), waits for the
# node, and PUTs through the security REST API, as the admin user, on every start (idempotent):
#   roles/tenantrag_app         the role in tenantrag-role.json (tenantrag's indexes only)
#   internalusers/tenantrag     the application's user, with OPENSEARCH_APP_PASSWORD
#   rolesmapping/tenantrag_app  the user mapped to the role
# so the application never holds the admin password. A failed setup is logged and OpenSearch
# keeps running: the healthcheck (compose) or the API's /ready (Kubernetes) then reports it,
# since both authenticate as the application user.
# Used by docker-compose.yml and, as a copy, by deploy/k8s/opensearch-tenantrag.yaml.
set -uo pipefail

here="$(dirname "$0")"
app_user="tenantrag"
node_url="${OPENSEARCH_LOCAL_URL:-https://127.0.0.1:9200}"  # overridden only by the tests
if [[ ! "${OPENSEARCH_APP_PASSWORD:-}" =~ ^[A-Za-z0-9._~-]{16,}$ ]]; then
  echo "tenantrag: OPENSEARCH_APP_PASSWORD must be 16 or more URL-safe characters" \
    "(A-Z a-z 0-9 . _ ~ -); see .env.example" >&2
  exit 1
fi

./opensearch-docker-entrypoint.sh "$@" &
node=$!
trap 'kill -TERM "$node" 2>/dev/null' TERM INT

# Loopback inside this container, hence -k: the node's certificate is checked by the clients.
admin=(-sSk -u "admin:${OPENSEARCH_INITIAL_ADMIN_PASSWORD:-}")
health="$node_url/_cluster/health?wait_for_status=yellow&timeout=10s"
until [[ "$(curl "${admin[@]}" -o /dev/null -w '%{http_code}' "$health")" == 200 ]]; do
  kill -0 "$node" 2>/dev/null || break
  sleep 5
done

api="$node_url/_plugins/_security/api"
put() {
  curl "${admin[@]}" -f -o /dev/null -X PUT "$api/$1" \
    -H 'Content-Type: application/json' --data-binary "$2"
}
if kill -0 "$node" 2>/dev/null; then
  if put roles/tenantrag_app "@$here/tenantrag-role.json" \
    && put "internalusers/$app_user" \
      "{\"password\": \"$OPENSEARCH_APP_PASSWORD\", \"description\": \"tenantrag application\"}" \
    && put rolesmapping/tenantrag_app "{\"users\": [\"$app_user\"]}"; then
    echo "tenantrag: role tenantrag_app and user $app_user are in place"
  else
    echo "tenantrag: could not create the role or user (is OPENSEARCH_INITIAL_ADMIN_PASSWORD" \
      "still the admin password?); the application cannot log in" >&2
  fi
fi
wait "$node"
status=$?
while kill -0 "$node" 2>/dev/null; do  # a signal ends `wait` early: let the node shut down
  wait "$node"
  status=$?
done
exit "$status"
