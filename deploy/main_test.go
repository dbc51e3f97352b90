package deploy

import (
	"os"
	"testing"

	"github.com/exit137-exporter/exit137-exporter/internal/testrig"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testrig.RemoveBuilds()
	os.Exit(code)
}
