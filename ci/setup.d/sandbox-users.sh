#!/usr/bin/env bash
# Test user and tools for tests/tests/sandbox_*.rs.
exec bash "$(dirname "$0")/../setup-sandbox-users.sh"
