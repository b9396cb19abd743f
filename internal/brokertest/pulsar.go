package brokertest

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// EnsurePulsarNamespace creates tenant/namespace (the tenant too, if needed)
// through the Pulsar admin REST API at adminURL. Pulsar creates topics on
// first use, but not their tenant or namespace.
func EnsurePulsarNamespace(t testing.TB, adminURL, namespace string) {
	t.Helper()
	if err := PulsarNamespace(adminURL, namespace); err != nil {
		t.Fatal(err)
	}
}

// PulsarNamespace is EnsurePulsarNamespace without a test: it returns the error.
func PulsarNamespace(adminURL, namespace string) error {
	tenant, _, ok := strings.Cut(namespace, "/")
	if !ok {
		return fmt.Errorf("namespace %q must be tenant/namespace", namespace)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	tenantBody := `{"allowedClusters":["standalone"],"adminRoles":[]}`
	if err := put(client, adminURL+"/admin/v2/tenants/"+tenant, tenantBody); err != nil {
		return fmt.Errorf("creating Pulsar tenant %s: %w", tenant, err)
	}
	if err := put(client, adminURL+"/admin/v2/namespaces/"+namespace, ""); err != nil {
		return fmt.Errorf("creating Pulsar namespace %s: %w", namespace, err)
	}
	return nil
}

// put sends a PUT and accepts success or 409 (already exists).
func put(client *http.Client, url, body string) error {
	req, err := http.NewRequest(http.MethodPut, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 || resp.StatusCode == http.StatusConflict {
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return fmt.Errorf("PUT %s: %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
}
