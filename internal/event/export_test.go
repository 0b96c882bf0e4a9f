package event

// Waiting reports how many single events wait for a group to take them.
func (s *Service) Waiting() int {
	s.group.mu.Lock()
	defer s.group.mu.Unlock()
	return len(s.group.waiting)
}
