package store_test

import (
	"crypto/sha256"
	"fmt"
)

func sum(id string, n int) []byte {
	h := sha256.Sum256(fmt.Appendf(nil, "%s/%d", id, n))
	return h[:]
}
