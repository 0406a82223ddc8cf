"""The face model: ICT-FaceKit conversion and the model store, the torch FaceModel and albedo model, FaceParams (the
one parameter type of network, fitting and training) and head rotations."""
