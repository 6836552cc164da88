// pause is the sandbox ("infra") container of the node test bed: it holds the pod's namespaces and does
// nothing else. As PID 1 of the sandbox it reaps orphaned children and exits on SIGINT/SIGTERM, which is
// what the Kubernetes pause container does (kubernetes/build/pause/linux/pause.c).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
