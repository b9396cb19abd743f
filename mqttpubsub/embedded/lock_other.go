//go:build !unix

package embedded

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// lockDir marks dir as in use by creating dir/LOCK exclusively; the file is
// removed when the returned function is called. A broker that crashed leaves
// the file behind: remove it by hand once no broker uses the directory.
func lockDir(dir string) (func(), error) {
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("embedded broker: data directory %s is in use by another broker (lock file %s exists); give each broker its own data directory: %w", dir, path, ErrDataDirLocked)
		}
		return nil, fmt.Errorf("embedded broker: locking data directory %s: %w", dir, err)
	}
	return func() {
		_ = f.Close()
		_ = os.Remove(path)
	}, nil
}
