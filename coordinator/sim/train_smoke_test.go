package sim

import (
	"context"
	"os"
	"testing"
)

func TestTrainSmoke(t *testing.T) {
	f, err := DefaultFleet(40, 4000)
	if err != nil {
		t.Fatal(err)
	}
	r, err := RunTrain(context.Background(), f, TrainOptions{Seed: 1, Weeks: 12, FailBuild: 2, CVE: true, CVEDay: 20})
	if err != nil {
		t.Fatal(err)
	}
	r.WriteTable(os.Stdout)
}
