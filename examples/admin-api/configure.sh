#!/usr/bin/env bash
# The plugin through Kong's Admin API (Kong with a database, or a control plane in hybrid mode).
# Kong validates the configuration against the plugin's schema (docs/decisions.md #19): a bad
# one is answered 400 with the reason, before any request is audited.
#   KONG_ADMIN=http://127.0.0.1:8001 bash examples/admin-api/configure.sh
set -euo pipefail
admin="${KONG_ADMIN:-http://127.0.0.1:8001}"

# 1. A service and a route.
curl -fsS -X PUT "$admin/services/payments" --data url=http://payments.internal:8080 >/dev/null
curl -fsS -X PUT "$admin/services/payments/routes/payments" --data 'paths[]=/payments' >/dev/null

# 2. immudb-audit on the route (PUT with a name is idempotent). The password is a vault reference.
curl -fsS -X PUT "$admin/routes/payments/plugins/immudb-audit-payments" \
  -H 'content-type: application/json' \
  --data '{
    "name": "immudb-audit",
    "config": {
      "immudb_host": "immudb.internal",
      "immudb_username": "audit_writer",
      "immudb_password": "{vault://env/immudb-audit-password}",
      "immudb_database": "audit",
      "key_prefix": "payments"
    }
  }' >/dev/null

# 3. Scoped to a consumer: every request of that consumer, whatever the route. Kong runs one
#    instance of a plugin per request, the most specific: for this consumer's requests on the
#    payments route this one (consumer beats route). POST creates a new instance each time (its id
#    is in the answer); POST /routes/{route}/plugins works the same way for a route.
curl -fsS -X PUT "$admin/consumers/billing-batch" >/dev/null
curl -fsS -X POST "$admin/consumers/billing-batch/plugins" \
  -H 'content-type: application/json' \
  --data '{
    "name": "immudb-audit",
    "config": {
      "immudb_host": "immudb.internal",
      "immudb_username": "audit_writer",
      "immudb_password": "{vault://env/immudb-audit-password}",
      "immudb_database": "audit",
      "key_prefix": "billing"
    }
  }' >/dev/null

# 4. A password rotation: change the secret behind the reference, or PATCH the field. Kong starts
#    a new instance with the new configuration; the writer reconnects with it, no restart.
curl -fsS -X PATCH "$admin/plugins/immudb-audit-payments" \
  -H 'content-type: application/json' \
  --data '{"config": {"immudb_password": "{vault://env/immudb-audit-password-2}"}}' >/dev/null

# 5. What Kong refuses: pseudonyms without a key (400, "privacy.pseudonymize needs the secret 'pseudonym_key' ...").
out=$(curl -sS -w '\n%{http_code}' -X PATCH "$admin/plugins/immudb-audit-payments" \
  -H 'content-type: application/json' \
  --data '{"config": {"privacy": {"pseudonymize": ["client_ip"]}}}' || true)
echo "${out%$'\n'*}" >&2   # Kong's answer, with the reason
echo "pseudonyms without a key: HTTP ${out##*$'\n'} (400 expected)"
