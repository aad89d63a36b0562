#!/usr/bin/env bash
# Deploys boxoffice to the Kubernetes cluster kubectl points at:
#   BOXOFFICE_IMAGE=registry.example/boxoffice:0.1.0 k8s/deploy.sh
# Builds nothing: push the image built from the Dockerfile first (the
# manifests say boxoffice:0.1.0; BOXOFFICE_IMAGE replaces it). Creates the
# secret once (random auth secret and database password; the organizer
# password from BOXOFFICE_ORGANIZER_PASSWORD), then the stateful services,
# then the roles, and waits for each rollout. With SKIP_INFRA=1 the cluster's
# own Kafka, PostgreSQL and Redis are used: edit config.yaml and the secret.
set -euo pipefail
DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NS=boxoffice
IMAGE="${BOXOFFICE_IMAGE:-boxoffice:0.1.0}"
say() { printf '\033[1m[deploy]\033[0m %s\n' "$*"; }

command -v kubectl >/dev/null || { echo "kubectl is needed" >&2; exit 1; }
kubectl apply -f "$DIR/namespace.yaml"
if ! kubectl -n "$NS" get secret boxoffice-secrets >/dev/null 2>&1; then
  say "creating the secret boxoffice-secrets"
  pg_password="$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
  kubectl -n "$NS" create secret generic boxoffice-secrets \
    --from-literal=POSTGRES_PASSWORD="$pg_password" \
    --from-literal=DATABASE_URL="postgres://postgres:$pg_password@postgres.$NS.svc:5432/boxoffice" \
    --from-literal=BOXOFFICE_AUTH_SECRET="$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')" \
    --from-literal=BOXOFFICE_ORGANIZER_PASSWORD="${BOXOFFICE_ORGANIZER_PASSWORD:?set the organizers password}"
fi
kubectl apply -f "$DIR/config.yaml"
if [[ "${SKIP_INFRA:-0}" != 1 ]]; then
  say "Kafka, PostgreSQL, Redis"
  kubectl apply -f "$DIR/infra.yaml"
  for s in statefulset/kafka statefulset/postgres deployment/redis; do
    kubectl -n "$NS" rollout status "$s" --timeout=300s
  done
fi
say "the roles (image $IMAGE)"
sed "s#image: boxoffice:0.1.0#image: $IMAGE#" "$DIR/app.yaml" | kubectl apply -f -
for s in deployment/reservation-processor statefulset/seat-processor deployment/api deployment/dashboard; do
  kubectl -n "$NS" rollout status "$s" --timeout=300s
done
say "done: kubectl -n $NS port-forward svc/dashboard 8380 (web app), svc/api 8080 (API)"
